"""The transfer engine: plans a copy and moves the bytes to every destination."""
