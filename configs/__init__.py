"""The YAML configs, installed as the package project.configs so the scripts find them wherever the project is."""
