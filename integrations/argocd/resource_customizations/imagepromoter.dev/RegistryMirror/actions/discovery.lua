-- Actions Argo CD offers on an image-promoter RegistryMirror: suspend and
-- resume (spec.suspend), and reconcile (the operator's reconcile-requested-at
-- annotation). A suspended mirror can only be resumed: the operator does not
-- sync it, so asking it to reconcile would do nothing.
local actions = {}
local suspended = (obj.spec or {}).suspend == true
actions["suspend"] = { ["disabled"] = suspended }
actions["resume"] = { ["disabled"] = not suspended }
actions["reconcile"] = { ["disabled"] = suspended }
return actions
