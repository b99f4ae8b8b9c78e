-- Store one event of a channel and announce it, in one atomic step.
--
-- KEYS[1]: the channel's meta hash (e: epoch, s: last sequence number,
--          b and p: the base and the epoch its epoch continues, n: the
--          identity of the server that stored the last event)
-- KEYS[2]: the channel's history stream (entry ids 0-<seq>)
-- ARGV[1]: the identity of the server this runs on (its run_id)
-- ARGV[2]: a new epoch, used if one must start
-- ARGV[3]: how many entries the history keeps (about)
-- ARGV[4]: the kind: 'p' an event, 'e' an order to end the streams
-- ARGV[5]: the payload
-- ARGV[6]: the PUB/SUB channel
-- ARGV[7]: 'PUBLISH', or 'SPUBLISH' on a cluster
-- ARGV[8]: the publisher's time (seconds since the epoch), for the lag that
--          the streams measure; only the live message carries it
--
-- Every key carries the channel's hash tag, so this runs on a cluster too.
local meta = redis.call('HMGET', KEYS[1], 'e', 's', 'b', 'p', 'n')
local epoch, seq, base, prev = meta[1], tonumber(meta[2]), meta[3], meta[4]
if not epoch then
  -- A new channel, or one whose history this server lost.
  redis.call('DEL', KEYS[2])
  epoch, seq, base, prev = ARGV[2], 0, '0', ''
  redis.call('HSET', KEYS[1], 'e', epoch, 'b', base, 'p', prev, 'n', ARGV[1])
elseif meta[5] ~= ARGV[1] then
  -- Another server stored the last event (a replica took over, or the
  -- server restarted from its files): what it acknowledged last may not
  -- have reached this one. A new epoch continues the old one from here,
  -- so a client beyond this point learns that it had events now lost, and
  -- no sequence number it saw is ever given to another event.
  prev, base, epoch = epoch, tostring(seq), ARGV[2]
  redis.call('HSET', KEYS[1], 'e', epoch, 'b', base, 'p', prev, 'n', ARGV[1])
end
seq = seq + 1
redis.call('HSET', KEYS[1], 's', seq)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '0-' .. seq, ARGV[4], ARGV[5])
redis.call(ARGV[7], ARGV[6],
  seq .. ' ' .. epoch .. ' ' .. base .. ' ' .. prev .. ' ' .. ARGV[4] .. ' ' .. ARGV[8]
  .. '\n' .. ARGV[5])
return {epoch, seq}
