"""One training run: LightningCLI for its settings, its run folder, loggers, callbacks, and the run itself
(`run.py`: build the data, the model and the Trainer, fit, test the selected checkpoint, print the summary)."""
