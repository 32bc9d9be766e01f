"""Where picture files live: under the data dir (the default) or in an S3-compatible object store.

core.images decides *what* is stored (EXIF-free bytes named by their SHA-256, thumbnails named by
that hash and their size); a store only writes, reads and deletes bytes by key. Both stores behave
the same way:

- ``put`` is idempotent: a key is a content hash, so a key already present is not written again;
- ``get`` of a key that is not there raises :class:`PictureMissing` (a ``FileNotFoundError``: the
  picture was purged, or its file was removed by hand);
- any failure of the store itself (the S3 server down or refusing our keys, the disk full or
  read-only) raises :class:`StoreUnavailable`, never a bare network error. Callers keep the picture
  queued (the fetch worker, the OCR worker) or answer 503 (the API): nothing is lost, and the
  message names the store and what to check.

The S3 store uses the ``minio`` client (one small package on urllib3, which the project already
has; boto3 would add about 100 MB): ``pip install '.[s3]'``. Configuration is read from
``YUQING_IMAGE_S3_*`` (README, "Pictures"); the keys come from the environment only.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from core.errors import YuqingError
from core.settings import Settings, get_settings

log = logging.getLogger(__name__)


class StoreUnavailable(YuqingError):
    """The picture store cannot be used right now (the message says which store and what to check)."""

    status_code = 503


class PictureMissing(FileNotFoundError):
    """A key the store does not hold."""


class PictureStore(Protocol):
    #: Where the pictures are, for messages and `yuqing images status` (no secrets).
    where: str

    def put(self, key: str, data: bytes, mime: str) -> None: ...

    def get(self, key: str) -> bytes: ...

    def delete(self, keys: Iterable[str]) -> None: ...

    def check(self) -> None: ...


def picture_store(settings: Settings | None = None) -> PictureStore:
    """The store the settings name: S3 when ``YUQING_IMAGE_S3_ENDPOINT`` is set, else the data dir."""
    settings = settings or get_settings()
    if not settings.image_s3_endpoint:
        return LocalStore(settings.data_dir / "images")
    access = settings.image_s3_access_key.get_secret_value() if settings.image_s3_access_key else ""
    secret = settings.image_s3_secret_key.get_secret_value() if settings.image_s3_secret_key else ""
    return _s3_store(settings.image_s3_endpoint, settings.image_s3_bucket, settings.image_s3_prefix,
                     settings.image_s3_region, access, secret, settings.image_s3_timeout)


# ----------------------------------------------------------------------------- the data dir


class LocalStore:
    """Files under ``<data_dir>/images/<key>``, written through a temporary file and a rename (a
    reader never sees half a picture; two workers writing the same key both end with the same file)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.where = str(root)

    def _path(self, key: str) -> Path:
        path = self.root / key
        if ".." in Path(key).parts or Path(key).is_absolute():
            raise ValueError(f"invalid picture key: {key!r}")
        return path

    def put(self, key: str, data: bytes, mime: str) -> None:
        path = self._path(key)
        if path.exists():
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(path.suffix + f".{os.getpid()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        except OSError as err:
            raise StoreUnavailable(f"图片无法写入数据目录 {self.root}（{err.strerror or err}）：请检查磁盘空间和权限，"
                                   "图片留在队列中，稍后重试") from err

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as err:
            raise PictureMissing(f"图片文件不在数据目录中（{key}）") from err
        except OSError as err:
            raise StoreUnavailable(f"图片无法从数据目录 {self.root} 读取（{err.strerror or err}）") from err

    def delete(self, keys: Iterable[str]) -> None:
        try:
            for key in keys:
                self._path(key).unlink(missing_ok=True)
        except OSError as err:
            raise StoreUnavailable(f"图片无法从数据目录 {self.root} 删除（{err.strerror or err}）") from err

    def check(self) -> None:
        if self.root.exists() and not os.access(self.root, os.W_OK):
            raise StoreUnavailable(f"数据目录 {self.root} 不可写")


# ----------------------------------------------------------------------------- S3-compatible


@lru_cache(maxsize=4)
def _s3_store(endpoint: str, bucket: str, prefix: str, region: str | None, access: str, secret: str,
              timeout: float) -> S3Store:
    """One client per configuration (it holds a connection pool), shared by the threads of a process."""
    return S3Store(endpoint, bucket, prefix=prefix, region=region, access_key=access, secret_key=secret,
                   timeout=timeout)


class S3Store:
    """Objects ``<prefix><key>`` in one bucket of an S3-compatible store (MinIO, Ceph, OSS, COS, S3).

    Requests time out after ``timeout`` seconds and are tried twice more on a dropped connection
    or a 5xx answer (urllib3's backoff): a store that is down costs a worker a few seconds, then
    :class:`StoreUnavailable`, and the pictures wait in the queue."""

    def __init__(self, endpoint: str, bucket: str, *, prefix: str = "", region: str | None = None,
                 access_key: str = "", secret_key: str = "", timeout: float = 10.0) -> None:
        try:
            import urllib3
            from minio import Minio
        except ImportError as err:  # pragma: no cover - depends on the installation
            raise StoreUnavailable("YUQING_IMAGE_S3_ENDPOINT 已设置，但未安装 S3 客户端：pip install '.[s3]'") from err
        if not access_key or not secret_key:
            raise StoreUnavailable("YUQING_IMAGE_S3_ENDPOINT 已设置，还需要 YUQING_IMAGE_S3_ACCESS_KEY "
                                   "和 YUQING_IMAGE_S3_SECRET_KEY")
        parts = urlsplit(endpoint)
        self.bucket, self.prefix = bucket, prefix
        self.where = f"{parts.scheme}://{parts.netloc}/{bucket}/{prefix}"
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=min(timeout, 5.0), read=timeout),
            retries=urllib3.Retry(total=2, backoff_factor=0.2, status_forcelist=(500, 502, 503, 504)),
            maxsize=8,
        )
        self.client = Minio(parts.netloc, access_key=access_key, secret_key=secret_key,
                            secure=parts.scheme == "https", region=region, http_client=http)
        self._bucket_ready = False

    def _name(self, key: str) -> str:
        return self.prefix + key

    def _unavailable(self, err: Exception, doing: str) -> StoreUnavailable:
        code = getattr(err, "code", None)
        if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            hint = "存储拒绝了访问密钥：请检查 YUQING_IMAGE_S3_ACCESS_KEY / YUQING_IMAGE_S3_SECRET_KEY"
        else:  # urllib3 wraps the cause (connection refused, timeout) in MaxRetryError: name the cause
            cause = getattr(err, "reason", None) or err
            hint = f"{type(cause).__name__}: {str(cause).split('): ', 1)[-1][:160]}"
        return StoreUnavailable(f"图片存储（S3 {self.where}）不可用，{doing}失败：{hint}；图片留在队列中，稍后重试")

    def _call(self, doing: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run one client call; store failures become StoreUnavailable, a missing key PictureMissing."""
        from minio.error import MinioException, S3Error
        from urllib3.exceptions import HTTPError

        try:
            return fn(*args, **kwargs)
        except S3Error as err:
            if err.code in ("NoSuchKey", "NoSuchObject"):
                raise PictureMissing(f"图片不在存储中（{args[1] if len(args) > 1 else ''}）") from err
            raise self._unavailable(err, doing) from err
        except (MinioException, HTTPError, OSError, ValueError) as err:
            raise self._unavailable(err, doing) from err

    def _ensure_bucket(self) -> None:
        """Create the bucket on first write if it is missing (MinIO and most stores allow it)."""
        if self._bucket_ready:
            return
        if not self._call("检查存储桶", self.client.bucket_exists, self.bucket):
            log.info("creating picture bucket", extra={"bucket": self.bucket})
            self._call("创建存储桶", self.client.make_bucket, self.bucket)
        self._bucket_ready = True

    def put(self, key: str, data: bytes, mime: str) -> None:
        self._ensure_bucket()
        try:
            self._call("查询", self.client.stat_object, self.bucket, self._name(key))
            return  # content-addressed: the same key holds the same bytes
        except PictureMissing:
            pass
        self._call("写入", self.client.put_object, self.bucket, self._name(key), io.BytesIO(data), len(data),
                   content_type=mime)

    def get(self, key: str) -> bytes:
        resp = self._call("读取", self.client.get_object, self.bucket, self._name(key))
        try:
            return bytes(self._call("读取", resp.read))
        finally:
            resp.close()
            resp.release_conn()

    def delete(self, keys: Iterable[str]) -> None:
        from minio.deleteobjects import DeleteObject

        names = [DeleteObject(self._name(k)) for k in keys]
        if not names:
            return
        # remove_objects is lazy: the errors come from iterating it (a missing key is not one)
        errors = self._call("删除", lambda: list(self.client.remove_objects(self.bucket, names)))
        if errors:
            raise StoreUnavailable(f"图片存储（S3 {self.where}）删除 {len(errors)} 个对象失败：{errors[0]}")

    def check(self) -> None:
        self._bucket_ready = False
        self._ensure_bucket()
