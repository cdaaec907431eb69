"""Experiment-tracker reporters (MLflow, TensorBoard): placeholder until written."""
