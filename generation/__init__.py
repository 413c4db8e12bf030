"""What is compared: corpora and their items, generators and their samples, generation jobs."""
