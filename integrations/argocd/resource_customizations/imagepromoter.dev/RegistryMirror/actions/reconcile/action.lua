-- Asks the operator to look at this object now, as `image-promoter reconcile`
-- does: a new value of the annotation imagepromoter.dev/reconcile-requested-at
-- bypasses its schedule and backoffs. The value is the current time in UTC.
local os = require("os")
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["imagepromoter.dev/reconcile-requested-at"] = os.date("!%Y-%m-%dT%H:%M:%SZ")
return obj
