"""Demand-driven autoscaling: GitHub workflow_job webhooks and a polling backstop turn queued
jobs into spec.replicas of the matching RunnerScaleSet."""
