"""devkube's controllers: the few kube-controller-manager loops needed to run Deployments.

They are ordinary API clients over HTTP (list + watch, create/update/patch/delete, the status
subresource), so they also exercise the devkube API server the way a real controller manager
would. Entry point: ``manager.run``.
"""
