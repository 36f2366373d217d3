"""How good a model's answers are, as numbers and figures: classification metrics, calibration,
test-time augmentation and the evaluation figures. The evaluate stage writes them for the
trained model, benchmarks for any model, and the monitor reads calibration the same way."""
