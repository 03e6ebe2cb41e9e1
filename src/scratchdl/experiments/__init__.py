"""The book's experiments and figures; matplotlib is imported only inside this package."""
