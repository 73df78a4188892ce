/// ringcap's version, as `--version` and the JPEGs' EXIF Software tag say it.
public enum RingcapVersion {
    public static let string = "0.1.0"
}
