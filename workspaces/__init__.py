"""Who may do what: workspaces, memberships and roles, the one access module, the error
root and the plumbing every app's API shares. The bottom of the dependency chain: it
imports no other app of the project."""
