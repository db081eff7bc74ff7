"""Transfer studies: scratch vs fine-tuning strategies over label budgets and seeds, summarized."""
