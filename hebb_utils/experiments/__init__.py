"""What notebooks 04-07 run, with the goals they check: one module per experiment."""
