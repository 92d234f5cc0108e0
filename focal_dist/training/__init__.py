"""The training loop (trainer), the task (data, model, loss), metrics and summaries."""
