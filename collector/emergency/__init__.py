"""Emergency maintenance: live detection on ingested data, its configuration and the case notifier it feeds.

The pure parts (:mod:`collector.detect`, :mod:`collector.incidents`) stay beside it; this
package is where they meet the store, the clock and the notifier.
"""
