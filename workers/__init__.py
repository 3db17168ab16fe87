"""The Celery side of runner-provisioner: the app, the create_runner and summarize_batch tasks,
and the creation code they share with the sequential path."""
