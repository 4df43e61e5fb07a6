"""The legacy systems (CSCS and CS2): the extraction contract, reading, normalising, and the
reasons a row is quarantined."""
