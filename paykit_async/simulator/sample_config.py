"""A complete simulator configuration file with every key at its default, for ``--config``.

``paykit simulator sample-config > sim.toml`` prints it; a test keeps it equal to
``SimulatorConfig()`` and complete (every key of :data:`~paykit_async.simulator.config.CONFIG_SECTIONS`).
"""

from __future__ import annotations

__all__ = ["SAMPLE_CONFIG"]

SAMPLE_CONFIG = """\
# paykit simulator configuration: every key, at its default value.
#   paykit simulator serve --config sim.toml
# Unknown sections or keys are refused. Times are seconds of the simulator's clock.

# The merchants the simulator accepts. These are its public DEMO credentials (accepted by this
# simulator only); put your own here to test with the exact values of your configuration.
[wechatpay]                            # WeChatPayClient(appid, mch_id, api_key)
appid = "wxd930ea5d5a258f4f"
mch_id = "1900000109"                  # also the password of the --tls-dir apiclient_cert.p12
api_key = "simulatorsimulatorsimulator00001"
# balance = 100000                     # refundable fen, then NOTENOUGH (default: unlimited)

[wechatpay-v3]                         # WeChatPayV3Client(mchid, private_key, ...)
mchid = "1900000109"
certificate_serial_no = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
apiv3_key = "simulatorV3apiv3keysimulator0001"  # 32 characters
wechatpay_public_key_id = "PUB_KEY_ID_0119000010920260101000000000000"
mode = "public_key"                    # or "certificate": replies signed by platform certificates
# private_key = "apiclient_key.pem"    # merchant key (default: generated; see serve --v3-keys-dir)
# balance = 100000                     # refundable fen, then NOT_ENOUGH (default: unlimited)
# Read by the paykit command only (one file can configure both): ignored by the simulator.
# wechatpay_public_key = "pub_key.pem"
# sub_mchid = "1900000110"
# base_url = "http://127.0.0.1:8000/wechatpay-v3"
# ca_file = "simtls/ca.pem"
# max_connections = 100

[payjs]                                # PayJSClient(mchid, key)
mchid = "1500000001"
key = "simulator-payjs-key"
# unsettled_balance = 100000           # fen; refunds need more than they take (default: unlimited)

[eftpay]                               # EftPayClient(user_confirm_key, secret)
user_confirm_key = "S0000001"
secret = "simulator-eftpay-secret"
# balance = "1000.00"                  # refundable amount (default: unlimited)

[simulator]
auto_orders = false                    # create unknown orders on first sight, as paid (serve --auto-orders)
payjs_auto_order_amount = 100          # fen of a PAYJS order created that way
completion_delay = 1.0                 # how long a refund stays PROCESSING
refund_outcome = "success"             # how refunds end: "success", "closed", "change" or "fail"
payjs_unsigned_duplicate = true        # a repeated PAYJS refund answers unsigned, as the real service does
wechatpay_max_refunds = 50             # refunds per WeChat Pay order
wechatpay_close_after = 300.0          # a WeChat Pay order can be closed this long after creation
wechatpay_refund_within = 31536000.0   # a WeChat Pay v2 order can be refunded this long (1 year)
payjs_close_within = 2592000.0         # PAYJS close window (30 days)
payjs_reverse_within = 604800.0        # PAYJS reverse window (7 days)
eftpay_time_tolerance = 600.0          # how far an eftPay request's time may be from the clock
notify_schedule = [0.0, 0.5, 1.0, 2.0, 5.0, 15.0]  # notification attempts, after completion
notify_poll_interval = 0.05            # how often the notification sender looks for due work
# notify_ca_file = "ca.pem"            # extra CA to trust when POSTing notifications over HTTPS
# rate_limit = 150                     # requests/s per merchant (sliding 1 s window), then each
#                                      # provider's over-limit reply (default: no limit)

[faults]
seed = 0                               # same seed, same sequence of requests -> same faults
# One [[faults.rules]] table per rule; the first matching a request applies. Rates are 0..1 and
# add up to at most 1 per rule. Endpoints: refund, refundv2, refundquery, closeorder (WeChat Pay);
# refund, close, reverse, check (PAYJS); JSAPIService, QRcodeTradeQuery (eftPay); "*" = any.
# [[faults.rules]]
# provider = "*"                       # "wechatpay", "payjs", "eftpay" or "*"
# endpoint = "*"
# latency = 0.0                        # seconds added ...
# latency_rate = 0.0                   # ... to this share of requests
# drop_before = 0.0                    # connection dropped, nothing done
# bad_gateway = 0.0                    # a proxy's HTTP 502 page, nothing done
# server_error = 0.0                   # HTTP 500/503, nothing done
# rate_limited = 0.0                   # WeChat FREQUENCY_LIMITED; PAYJS/eftPay HTTP 429
# retryable_code = 0.0                 # SYSTEMERROR and the like, nothing done
# drop_after = 0.0                     # work done, then the connection is dropped
# error_after = 0.0                    # work done, then HTTP 500
# truncated = 0.0                      # work done, reply cut in half
# bad_signature = 0.0                  # work done, reply signed wrongly
# retry_after = 1                      # Retry-After seconds sent with HTTP 429
"""
