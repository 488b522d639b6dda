# Pascal Context-59: the 59 object classes; background (0) is ignored
# (reduce_zero_label, done by the dataset class).
_base_ = './pascal_context.py'
dataset_type = 'PascalContextDataset59'
train_dataloader = dict(dataset=dict(type=dataset_type))
val_dataloader = dict(dataset=dict(type=dataset_type))
test_dataloader = val_dataloader
