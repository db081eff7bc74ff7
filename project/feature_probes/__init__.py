"""Scores of frozen features against labels: LogME, leave-one-out k-NN, and a cross-validated logistic probe."""
