"""What may be left in a scrubbed file: exiftool tags (``Group1:Tag``) per format.

Everything here describes how to decode or display the image, or is the ICC profile (kept so
that colours do not shift).  Anything else that exiftool reads back is a finding.  This list
is documented, format by format, in ``docs/scrub.md``.
"""

from __future__ import annotations

from facecloak.scrub.words import words

# Tags exiftool computes about the file itself, whatever its format.
_FILE = words(
    "FileType FileTypeExtension MIMEType ImageWidth ImageHeight EncodingProcess BitsPerSample"
    " ColorComponents YCbCrSubSampling ExifByteOrder BMPVersion Planes BitDepth Compression"
    " ImageLength PixelsPerMeterX PixelsPerMeterY NumColors NumImportantColors RedMask"
    " GreenMask BlueMask AlphaMask ColorSpace RedEndpoint GreenEndpoint BlueEndpoint GammaRed"
    " GammaGreen GammaBlue MaxVal"
)
_COMPOSITE = frozenset(("ImageSize", "Megapixels", "YCbCrSubSampling"))
# Groups that are always allowed as a whole: the tool itself, the file system, the ICC profile.
ALWAYS_GROUPS = ("ExifTool", "System", "ICC_Profile", "ICC-")

_TIFF_STRUCTURE = words(
    "SubfileType OldSubfileType ImageWidth ImageHeight BitsPerSample Compression"
    " PhotometricInterpretation Thresholding FillOrder StripOffsets Orientation SamplesPerPixel"
    " RowsPerStrip StripByteCounts MinSampleValue MaxSampleValue XResolution YResolution"
    " PlanarConfiguration ResolutionUnit TransferFunction WhitePoint PrimaryChromaticities"
    " ColorMap Predictor TileWidth TileLength TileOffsets TileByteCounts ExtraSamples"
    " SampleFormat JPEGTables YCbCrCoefficients YCbCrSubSampling YCbCrPositioning"
    " ReferenceBlackWhite InkSet"
)

ALLOWED: dict[str, frozenset[str]] = {
    "JPEG": frozenset(
        {"JFIF:JFIFVersion", "JFIF:ResolutionUnit", "JFIF:XResolution", "JFIF:YResolution"}
        | {"IFD0:Orientation", "Adobe:DCTEncodeVersion", "Adobe:APP14Flags0"}
        | {"Adobe:APP14Flags1", "Adobe:ColorTransform"}
    ),
    "PNG": frozenset(
        f"PNG:{tag}"
        for tag in words(
            "ImageWidth ImageHeight BitDepth ColorType Compression Filter Interlace Gamma"
            " SRGBRendering WhitePointX WhitePointY RedX RedY GreenX GreenY BlueX BlueY"
            " PixelsPerUnitX PixelsPerUnitY PixelUnits BackgroundColor Palette Transparency"
            " SignificantBits AnimationFrames AnimationPlays ProfileName"
        )
    )
    | {"IFD0:Orientation", "PNG-pHYs:PixelsPerUnitX", "PNG-pHYs:PixelsPerUnitY"}
    | {"PNG-pHYs:PixelUnits"},
    "TIFF": frozenset(f"IFD0:{tag}" for tag in _TIFF_STRUCTURE),
    "WEBP": frozenset(
        f"RIFF:{tag}"
        for tag in words(
            "WebP_Flags ImageWidth ImageHeight VP8Version HorizontalScale VerticalScale"
            " AlphaPreprocessing AlphaFiltering AlphaCompression BackgroundColor"
            " AnimationLoopCount"
        )
    )
    | {"IFD0:Orientation"},
    "GIF": frozenset(
        f"GIF:{tag}"
        for tag in words(
            "GIFVersion ImageWidth ImageHeight HasColorMap ColorResolutionDepth BitsPerPixel"
            " BackgroundColor AnimationIterations TransparentColor FrameCount Duration"
            " PixelAspectRatio"
        )
    ),
    "BMP": frozenset(),
    "PPM": frozenset(),
}
_HEIF = frozenset(
    f"QuickTime:{tag}"
    for tag in words(
        "MajorBrand MinorVersion CompatibleBrands HandlerType PrimaryItemReference"
        " HEVCConfigurationVersion GeneralProfileSpace GeneralTierFlag GeneralProfileIDC"
        " GenProfileCompatibilityFlags ConstraintIndicatorFlags GeneralLevelIDC"
        " MinSpatialSegmentationIDC ParallelismType ChromaFormat BitDepthLuma BitDepthChroma"
        " AverageFrameRate ConstantFrameRate NumTemporalLayers TemporalIDNested"
        " AV1ConfigurationVersion SeqProfile SeqLevelIdx0 SeqTier0 HighBitDepth TwelveBit"
        " MonochromeFlag ChromaSubsamplingX ChromaSubsamplingY ChromaSamplePosition"
        " InitialDelaySamples ImageSpatialExtent ImagePixelDepth Rotation ImageMirror"
        " ColorProfiles ColorPrimaries TransferCharacteristics MatrixCoefficients"
        " VideoFullRangeFlag AuxiliaryImageType MediaDataSize MediaDataOffset"
        " PixelAspectRatio CleanAperture MediaData Free Unknown_free"
    )
) | {"Meta:PrimaryItemReference", "Meta:MetaImageSize"}
# Apple's HDR gain map item: an XMP packet holding only the gain-map version (display data).
_HEIF |= {"XMP-x:XMPToolkit", "XMP-HDRGainMap:HDRGainMapVersion"}
ALLOWED["HEIF"] = _HEIF
ALLOWED["AVIF"] = _HEIF


def allowed(fmt: str, key: str) -> bool:
    """Whether exiftool's ``Group1:Tag`` may remain in a scrubbed file of this format."""
    group, _, tag = key.partition(":")
    if group.startswith(ALWAYS_GROUPS):
        return True
    if group == "File":
        return tag in _FILE
    if group == "Composite":
        return tag in _COMPOSITE
    return key in ALLOWED.get(fmt, frozenset())
