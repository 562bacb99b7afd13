"""Dashboard pages: thin views that parse input, call services/selectors and render templates."""
