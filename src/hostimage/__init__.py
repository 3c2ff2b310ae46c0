"""hostimage: host images for private clouds."""
