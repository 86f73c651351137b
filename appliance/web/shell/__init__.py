"""The site shell: start page, sign-in and password pages, and the navigation every page shares."""
