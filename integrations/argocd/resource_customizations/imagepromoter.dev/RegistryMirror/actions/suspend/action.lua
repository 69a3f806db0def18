-- Stops the operator syncing this mirror (spec.suspend: true). What it copied
-- stays; its last results stay in its status.
if obj.spec == nil then
  obj.spec = {}
end
obj.spec.suspend = true
return obj
