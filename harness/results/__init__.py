"""Results on disk: atomic Parquet writes, the leaderboard and plots."""
