"""dictionaries: data with known features (ground_truth.py) and how well a learned dictionary
recovers them (recovery.py), for comparing Hebbian maps with sparse autoencoders."""
