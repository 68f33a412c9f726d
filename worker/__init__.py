"""The worker: hosts the workflows and activities on the task queue."""
