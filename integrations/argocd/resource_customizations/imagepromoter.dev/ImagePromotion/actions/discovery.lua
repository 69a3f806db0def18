-- Actions Argo CD offers on an image-promoter ImagePromotion: reconcile (the
-- operator's reconcile-requested-at annotation), e.g. to check a refused image
-- again after a fix outside the cluster (a new scan, a signature pushed later).
local actions = {}
actions["reconcile"] = { ["disabled"] = false }
return actions
