-- Health of an image-promoter RegistryMirror (imagepromoter.dev/v1alpha1).
-- Status follows the kstatus conventions: observedGeneration, Ready, and the
-- abnormal-true Reconciling and Stalled conditions. Uses only the base and
-- table libraries, so it also runs from argocd-cm without useOpenLibs.
local hs = {}

local function condition(conditions, type)
  for _, c in ipairs(conditions) do
    if c.type == type then
      return c
    end
  end
  return nil
end

local function text(c)
  if c.message ~= nil and c.message ~= "" then
    return c.message
  end
  return c.reason or c.type
end

-- Suspended first, as Argo CD's checks for Flux kinds do: it is a fact of the
-- spec, true whatever the last sync left behind.
if (obj.spec or {}).suspend == true then
  hs.status = "Suspended"
  hs.message = "Mirror is suspended (spec.suspend is true)"
  return hs
end

local status = obj.status or {}
local generation = (obj.metadata or {}).generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. generation
  return hs
end

local conditions = status.conditions or {}
-- The first condition that is True decides, in this order.
local decisive = {
  { type = "Stalled", health = "Degraded" },
  { type = "Reconciling", health = "Progressing" },
  { type = "Ready", health = "Healthy" },
}
for _, rule in ipairs(decisive) do
  local c = condition(conditions, rule.type)
  if c ~= nil and c.status == "True" then
    hs.status = rule.health
    hs.message = text(c)
    return hs
  end
end

-- Nothing left to copy (not Reconciling) and some tags drifted or failed:
-- waiting does not fix them, so Degraded, as Argo CD's checks for Flux kinds
-- treat a settled Ready=False.
local settled = condition(conditions, "Ready")
if settled ~= nil and settled.status == "False" and (settled.reason == "TagsDrifted" or settled.reason == "TagsFailed") then
  hs.status = "Degraded"
  hs.message = text(settled)
  return hs
end

local ready = condition(conditions, "Ready")
hs.status = "Progressing"
if ready ~= nil then
  hs.message = text(ready)
else
  hs.message = "Waiting for the operator to report Ready"
end
return hs
