"""dictionaries: data with known features (ground_truth.py) and the dictionary methods behind one
interface (registry.py), for comparing Hebbian maps with sparse autoencoders; how well a learned
dictionary recovers the features is measured in measure/recovery.py."""
