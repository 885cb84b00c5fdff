"""Which model serves: retrain jobs, the job lock, admin access and the ``/models*`` routes."""
