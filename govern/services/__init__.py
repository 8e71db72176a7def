"""The governance services. Each public function is one command's work."""
