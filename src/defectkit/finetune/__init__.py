"""Training and prediction: YOLO-World (ultralytics), SAM (segment-anything), a torchvision
classifier and an AutoEncoder baseline. Every trainer writes into one run folder: resolved
config, per-epoch metrics CSV, checkpoints."""
