-- autonad.optim: optimisers (optim.SGD, optim.Adam, optim.AdamW, each built over the lists
-- module:parameters() returns) and learning-rate schedules (optim.schedule). optim.X loads
-- lua/autonad/optim/X.lua on first use, so adding an optimiser is adding its file.
local optim = {}
return require('autonad.lazy')(optim, 'autonad.optim', 'optimiser')
