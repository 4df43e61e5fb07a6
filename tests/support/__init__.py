"""What several test packages share: builders, books, fault harness."""
