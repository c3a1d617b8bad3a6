"""The Tickwork worker daemon: schedules due jobs, claims runs, delivers them,
retries failures and takes over runs whose daemon died."""
