"""Scrapy settings of the yuqing crawler (``scrapy.cfg`` points here).

Static defaults only; values from our own settings (user agent, politeness, Redis) are applied
by :func:`crawler.runner.scrapy_settings` when a crawl starts, never at import time.
"""

BOT_NAME = "yuqing"
SPIDER_MODULES = ["crawler.spiders"]
NEWSPIDER_MODULE = "crawler.spiders"

ROBOTSTXT_OBEY = True
CONCURRENT_REQUESTS = 16
CONCURRENT_REQUESTS_PER_DOMAIN = 4
DOWNLOAD_TIMEOUT = 20
DOWNLOAD_MAXSIZE = 10 * 1024 * 1024
DOWNLOAD_WARNSIZE = 4 * 1024 * 1024
# A truncated page is still parsed (and reported) rather than thrown away.
DOWNLOAD_FAIL_ON_DATALOSS = False
RETRY_ENABLED = True
RETRY_TIMES = 2
REDIRECT_MAX_TIMES = 10
COOKIES_ENABLED = False
TELNETCONSOLE_ENABLED = False
# Scrapy 2.19 starts an HTTP server that runs Python code sent to it (token in the user's profile
# folder). Not on a machine that also holds the office's data.
REMOTE_CONTROL_ENABLED = False

AUTOTHROTTLE_ENABLED = True
AUTOTHROTTLE_START_DELAY = 1.0
AUTOTHROTTLE_MAX_DELAY = 30.0
AUTOTHROTTLE_TARGET_CONCURRENCY = 2.0

DOWNLOADER_MIDDLEWARES = {
    "crawler.middlewares.ConditionalRequestMiddleware": 560,
    # process_response runs from high to low: after decompression (590), before anything parses.
    "crawler.middlewares.ChineseEncodingMiddleware": 120,
}
ITEM_PIPELINES = {"crawler.pictures.PicturesPipeline": 200, "crawler.pipelines.IngestPipeline": 300}
EXTENSIONS = {"crawler.extensions.RunRecorder": 500}

LOG_LEVEL = "WARNING"
REQUEST_FINGERPRINTER_IMPLEMENTATION = "2.7"
FEED_EXPORT_ENCODING = "utf-8"
DUPEFILTER_CLASS = "crawler.middlewares.ReportingDupeFilter"
