"""A trained run as a usable model: a SavedModel export and predictions on your own images."""
