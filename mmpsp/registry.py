"""mmpsp's registries: children of mmseg's, with scope ``mmpsp``.

A config with ``default_scope='mmseg'`` builds mmpsp's modules as
``type='mmpsp.PSPHead'``; a config with ``default_scope='mmpsp'`` names them
plainly and still finds every mmseg and mmengine module through the parents.
Each child's ``locations`` holds mmpsp's own module plus its parent's, because
mmengine imports only the locations of the registry it builds from.
"""
from mmengine.registry import Registry
from mmseg import registry as mmseg_registry

SCOPE = 'mmpsp'


def _child(parent: Registry, *own_locations: str) -> Registry:
    locations = list(own_locations) + [
        loc for loc in parent._locations if loc not in own_locations
    ]
    # A registry without locations in a scope of mmengine's package table
    # (mmpsp is added there for ``mmpsp::`` config names) makes mmengine
    # call ``mmpsp.utils.register_all_modules``; importing mmpsp is that.
    return Registry(parent.name, parent=parent, scope=SCOPE,
                    locations=locations or [SCOPE])


RUNNERS = _child(mmseg_registry.RUNNERS)
RUNNER_CONSTRUCTORS = _child(mmseg_registry.RUNNER_CONSTRUCTORS)
LOOPS = _child(mmseg_registry.LOOPS)
HOOKS = _child(mmseg_registry.HOOKS, 'mmpsp.engine.hooks')
DATASETS = _child(mmseg_registry.DATASETS, 'mmpsp.datasets',
                  'mmpsp.demo.scenes')
DATA_SAMPLERS = _child(mmseg_registry.DATA_SAMPLERS)
TRANSFORMS = _child(mmseg_registry.TRANSFORMS, 'mmpsp.datasets')
MODELS = _child(mmseg_registry.MODELS, 'mmpsp.models')
MODEL_WRAPPERS = _child(mmseg_registry.MODEL_WRAPPERS)
WEIGHT_INITIALIZERS = _child(mmseg_registry.WEIGHT_INITIALIZERS)
OPTIMIZERS = _child(mmseg_registry.OPTIMIZERS)
OPTIM_WRAPPERS = _child(mmseg_registry.OPTIM_WRAPPERS,
                        'mmpsp.engine.optim_wrappers')
OPTIM_WRAPPER_CONSTRUCTORS = _child(mmseg_registry.OPTIM_WRAPPER_CONSTRUCTORS)
PARAM_SCHEDULERS = _child(mmseg_registry.PARAM_SCHEDULERS)
METRICS = _child(mmseg_registry.METRICS)
EVALUATOR = _child(mmseg_registry.EVALUATOR)
TASK_UTILS = _child(mmseg_registry.TASK_UTILS)
VISUALIZERS = _child(mmseg_registry.VISUALIZERS)
VISBACKENDS = _child(mmseg_registry.VISBACKENDS)
LOG_PROCESSORS = _child(mmseg_registry.LOG_PROCESSORS)
INFERENCERS = _child(mmseg_registry.INFERENCERS)

__all__ = [
    'SCOPE', 'RUNNERS', 'RUNNER_CONSTRUCTORS', 'LOOPS', 'HOOKS', 'DATASETS',
    'DATA_SAMPLERS', 'TRANSFORMS', 'MODELS', 'MODEL_WRAPPERS',
    'WEIGHT_INITIALIZERS', 'OPTIMIZERS', 'OPTIM_WRAPPERS',
    'OPTIM_WRAPPER_CONSTRUCTORS', 'PARAM_SCHEDULERS', 'METRICS', 'EVALUATOR',
    'TASK_UTILS', 'VISUALIZERS', 'VISBACKENDS', 'LOG_PROCESSORS', 'INFERENCERS'
]
