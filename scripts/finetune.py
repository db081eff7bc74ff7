"""Fine-tune a pretrained backbone on a target task; `--model.pretrained` names the checkpoint or its run folder."""

from project.commands import finetune

if __name__ == "__main__":
    finetune()
