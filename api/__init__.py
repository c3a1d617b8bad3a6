"""Tickwork's GraphQL API: jobs, executions and live updates over HTTP."""
