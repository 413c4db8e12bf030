"""What it means: statistics, scaling-law fits, reports, dashboard, exports."""
