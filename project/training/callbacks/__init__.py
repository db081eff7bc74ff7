"""Lightning callbacks of every run: the best and last checkpoints, interruption, per-epoch seeding, test figures."""
