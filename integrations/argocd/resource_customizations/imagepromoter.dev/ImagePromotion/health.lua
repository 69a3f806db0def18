-- Health of an image-promoter ImagePromotion (imagepromoter.dev/v1alpha1).
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

local status = obj.status or {}
local generation = (obj.metadata or {}).generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. generation
  return hs
end

local conditions = status.conditions or {}
-- The first condition in its state (True unless said) decides, in this order.
-- Compliant=False: the images are where they should be (Ready), but the
-- published digest no longer passes its policy (docs/compliance.md).
local decisive = {
  { type = "Stalled", health = "Degraded" },
  { type = "Reconciling", health = "Progressing" },
  { type = "Compliant", state = "False", health = "Degraded" },
  { type = "Ready", health = "Healthy" },
}
for _, rule in ipairs(decisive) do
  local c = condition(conditions, rule.type)
  if c ~= nil and c.status == (rule.state or "True") then
    hs.status = rule.health
    hs.message = text(c)
    return hs
  end
end

local ready = condition(conditions, "Ready")
hs.status = "Progressing"
if ready ~= nil then
  hs.message = text(ready)
else
  hs.message = "Waiting for the operator to report Ready"
end
return hs
