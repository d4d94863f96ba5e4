"""``AsyncImagePipeline``: the original image downloader's interface, over :func:`gbifxdl.fetch.fetch`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from gbifxdl.errors import ConfigError

# new outcome -> the original `status` values
_PROCESSING_FAILURES = {"not_image", "corrupt", "decompression_bomb"}


class AsyncImagePipeline:
    """Downloads every URL of a Parquet to ``output_dir/<speciesKey>/<url_hash>.<ext>``.

    As the original: ``resize`` shrinks the longest side, ``save2jpg`` re-encodes as JPEG
    (quality 95), rows without a species key go to ``unlabeled_species``, and
    ``<parquet stem>_processing_metadata.parquet`` gets the input columns plus
    ``filename``, ``img_hash``, ``width``, ``height`` and ``status``. Resumable now.
    SFTP upload and the GPU image processor are not supported.
    """

    def __init__(
        self,
        parquet_path: str | Path,
        output_dir: str | Path,
        output_parquet_path: str | Path | None = None,
        url_column: str = "identifier",
        max_concurrent_download: int = 128,
        max_download_attempts: int = 3,
        max_concurrent_processing: int = 4,
        batch_size: int = 65536,
        sftp_params: Any = None,
        remote_dir: str = "/",
        max_concurrent_upload: int = 16,
        verbose_level: int = 0,
        gpu_image_processor: Any = None,
        resize: int | None = None,
        save2jpg: bool = False,
    ) -> None:
        if sftp_params is not None:
            raise ConfigError("sftp_params: SFTP upload is not supported by gbifxdl 0.2; "
                              "fetch locally, then copy the folder (rsync, sftp)")
        if gpu_image_processor is not None:
            raise ConfigError("gpu_image_processor is not supported by gbifxdl 0.2; "
                              "run your model over the output folder afterwards")
        from gbifxdl.fetch import FetchSettings

        self.parquet_path = Path(parquet_path)
        self.output_dir = Path(output_dir)
        self.metadata_file = Path(output_parquet_path) if output_parquet_path else (
            self.parquet_path.with_name(f"{self.parquet_path.stem}_processing_metadata.parquet"))
        self.verbose_level = verbose_level
        self.settings = FetchSettings(
            resize=resize, reencode=bool(save2jpg or resize), connections=max_concurrent_download,
            max_attempts=max_download_attempts, workers=max_concurrent_processing, url_column=url_column,
            images_dir="", unlabeled="unlabeled_species",
        )

    def run(self) -> Path:
        """Return the metadata file after downloading and processing every image."""
        from gbifxdl.fetch import fetch

        summary = fetch(self.parquet_path, self.output_dir, self.settings, progress=self.verbose_level > 0)
        table = pq.read_table(summary.metadata_path)
        outcome = table.column("outcome")
        status = pc.if_else(pc.equal(outcome, "ok"), "processing_success",
                            pc.if_else(pc.is_in(outcome, pa.array(sorted(_PROCESSING_FAILURES))),
                                       "processing_failed", "downloading_failed"))
        filename = pc.if_else(pc.is_valid(table.column("path")),
                              pc.replace_substring_regex(table.column("path"), r"^.*/", ""), pa.scalar(None, pa.string()))
        # a re-encoded image has no pixel_hash: its sha256 identifies its pixels as well
        img_hash = pc.coalesce(table.column("pixel_hash"), table.column("sha256"))
        old = pa.table({"filename": filename, "img_hash": img_hash,
                        "width": table.column("width"), "height": table.column("height"), "status": status})
        inputs = pq.read_schema(self.parquet_path).names
        out = pa.Table.from_arrays([table.column(n) for n in inputs] + old.columns,
                                   names=inputs + old.column_names)
        tmp = self.metadata_file.with_name(self.metadata_file.name + ".tmp")
        pq.write_table(out.replace_schema_metadata(table.schema.metadata), tmp)
        tmp.replace(self.metadata_file)
        return self.metadata_file
