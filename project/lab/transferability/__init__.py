"""The transferability check: how well frozen backbone features fit a target task, before any fine-tuning."""
