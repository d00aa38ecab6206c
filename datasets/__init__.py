"""The data files the course ships (see README.md here); find them with buildgpt.resources.dataset_path."""
