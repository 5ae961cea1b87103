"""KPI endpoints: windows of summed buckets, time series and the agent leaderboard."""
