"""Reports over finished runs: read their TensorBoard event files, compare them in a figure and a table."""
