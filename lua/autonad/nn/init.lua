-- autonad.nn: the layers. nn.X loads lua/autonad/nn/X.lua on first use, so adding a layer
-- is adding its file (no registry to edit).
local nn = {}
return require('autonad.lazy')(nn, 'autonad.nn', 'layer')
