"""Networks and the Lightning classifier that trains them."""
