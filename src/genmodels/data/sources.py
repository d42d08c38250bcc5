"""Where each data file comes from, and the SHA-256 that proves it is the right one.

This table is the one place where sources and checksums are pinned. A checksum
is of the *decompressed* content: mirrors (Debian's ``dataset-fashion-mnist``
among them) re-compress the Fashion-MNIST archives, so their ``.gz`` bytes
differ while the IDX files inside are identical.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RemoteFile:
    dataset: str  # folder name in a mirror and under the output root
    name: str  # file name at the source; ".gz" files are decompressed on arrival
    sha256: str  # of the decompressed content
    urls: tuple[str, ...]  # canonical sources, tried in order
    local_dirs: tuple[str, ...] = ()  # system folders tried last (Debian packages)

    @property
    def target(self) -> str:
        """The file name on disk after download (decompressed)."""
        return self.name.removesuffix(".gz")


_FASHION_URLS = (
    # Zalando's own host, the one torchvision's FashionMNIST downloads from.
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/{name}",
    "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/{name}",
)
_FASHION_DEBIAN = ("/usr/share/datasets/fashion-mnist",)
_FASHION = {
    "train-images-idx3-ubyte.gz": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte.gz": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte.gz": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte.gz": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}

_SHAKESPEARE_URL = (
    "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
)
_SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"

# The 54 Sherlock Holmes stories of the workshop (dimtr/PyDataEHV_workshop), by file code.
_SHERLOCK_URL = (
    "https://raw.githubusercontent.com/dimtr/PyDataEHV_workshop/master/"
    "TextGeneration/datasets/sherlock/{name}"
)
_SHERLOCK = {
    "3gab": "d1902b7f8f13ad2e4075c2308820bc79cf7508e619231c2b51147e8be6d14d5d",
    "3gar": "4bfe1187591d21e70623fd31b25c335eb004257d0b9ce940a6b55c2b82a99f7a",
    "3stu": "c8fad17fd75685f91260ca2200d663c2eb4aaa5a422c79fc0bdfec10d1762595",
    "abbe": "ccc50beb61b3e3004207ee7fd152b05824f4a8dd854019a6c75c4f22a56c66a2",
    "bery": "46071770802d862d964f67f608fef719e9deec2655a9e2e64c2d5a639af1c2d9",
    "blac": "e192ec6d566f8e83709a2a459aff162309f4a2e143fadd3b9c220568cdd6a804",
    "blan": "4486f930e4c8557f768c4efbf4610d8317de615b7f8d66038e41c71674bf3b6e",
    "blue": "166fd872d50826f85b82a92e4b2a969100916b6748306f3c8eec8ce82296fb47",
    "bosc": "db68e8f5979210b76c4af406944a9cf4adffa06c5839107c7c723b13fe2fefea",
    "bruc": "6215a59f22bf43b4f60662e4a24ad2a8a09ee9a1029bae8b49c9f5c7c3656976",
    "card": "d33c472f9b0ebc13fb4091e050e5a70342706a185b9a70b4cf8f7e7bec91dbf6",
    "chas": "bcd62b4af8b8c9ad8f530696a4b82380e8c1103451fe153269a30ebba99660b5",
    "copp": "e4bbb69452d4ea62a723c9c6f64a532f380db15065316fc2ea133fd0c17f4f22",
    "cree": "7302972b4348a7836531fe6ab07ae301db119fdafe61aaceb3dec7b143930e20",
    "croo": "ae728e4af3ea0b8db83a3abdd52295c4358dbc16d94ac687708f27c129652093",
    "danc": "7f939c0b6925e2a44bc3ed643e1ec8d6cb33f0119c697d05f1e0965d709a2c2b",
    "devi": "f3efc7b3e2a9b976268d019a151592b39e9cd1fe5263ce88aee711e8c352d153",
    "dyin": "e6a1d49c589a3e4dcfabf361e794be4974bdf93b0c7eb65e4b01a7b5a5381a14",
    "empt": "061590dd474d1b7ea9c5f6013d4562d1395f0a1283c7ee2e4c16abca9f36a42e",
    "engr": "3fcd9d9bfc87cbc14719c0879ca11dc3445c396cad03ee094d0feb250cd18dd1",
    "fina": "57e7c03e6bceaa3b4c4defe98c094d72bf8b12d857b841ff4e995a3c72ad1709",
    "five": "3621358ad58b7a92b545bf4bddae782255bb6479e9fd62839f018aa26dda8f8a",
    "glor": "f3bbeac05c0182fd0bb55734b2e9e8d78cd4962c93ce113092f9be7f30e333a9",
    "gold": "da6bf86c47fdb2004bdc1c7b251bd6350ab510b65f478f16a09b3f460fefe06a",
    "gree": "9ea683069de5abffca9a8f08d927c5c732735e416bc19b582d7b35624d743901",
    "iden": "96aeeb400a212b11a07d94b4fd834249738582e3e3a7fc488639692e3e3e5624",
    "illu": "4a9a45703758806c71d74703b3193c3904e66ebfe1834ba18da44135fb73e316",
    "lady": "c9b7ee74a908118063238ca0d42cc2d58b4aeaf74f30d5602736193f8beaf3b9",
    "last": "89310a5a326dc745ac91a38044c7f15c7faf4171d844eb47b1f153d2c0367396",
    "lion": "ef946081f418c12f9ac4ba3f67eff74f436e0b86442bc98848422b635d631011",
    "maza": "89ba2a0d870118597511b10d8271bf618c5e3b4261a9a288d9cc8421ac1aed42",
    "miss": "1abeab3e60b46f484cdcff8b8f501564db57bb56e2f7f49df868faeb4b4ac141",
    "musg": "a970f0a67d9718c2cf75d18d7c885f044d6aaab89ec7cceb5908e5d8203f72d2",
    "nava": "6369c282c434e931ae8d63d57af54c01a177802daf5d16a58c26d207e8e6d61f",
    "nobl": "c618034ba2f423dbdc3240d642d7df1156250e2f8133e5e7a5b2ca6d943b2307",
    "norw": "ddd63ce712e88ae4d4205362c98a415db4e42657ce3408b9effaf5d085684eb3",
    "prio": "e26e88f9084ae790f9dc6e9ae9f9b01e4e7ffba9959bc739ef437ec1292d996e",
    "redh": "3325c719e6b630f009941b894a706830fe9afeba83e5ad8d47a1079d3c6f55ef",
    "reig": "3aac3ab685c7f060be9036c719975b9f3d0868bdcea73cb7fea357a65954c64d",
    "resi": "e0308a80f541dbde7d3bc73ddc851991178d75d9f51b34213acd497e5750eb2f",
    "reti": "6b0939083f87d581db982e9e800daa6ab540991c4491551157c50deaa6c7452a",
    "seco": "084606f978b2d89ff814c615efa4e1ab1488d7506de00b159280602137c668a1",
    "shos": "a03620ec9663f82979a3cc5a6b7e7ae4a1613df40d0920f9abe9aeefdaac6c5d",
    "silv": "344d3bbe121c821e2312c261f69616eab746c94909ca3229b79789e71bc4572b",
    "sixn": "59d87726615bd9957fbb887d37efa906f16d127c83564a8583b4a9d29176eddd",
    "soli": "13ddc8236d2bff83302b7c11c413e5a4f3bc54518a1657ba0b6b31a90f36f1b0",
    "spec": "b61f040bd32781f7c96afff566be24d1e0a6dc98a043ea928ecd456ed58a40ee",
    "stoc": "fafd2e1bbb1810b942b53b572a548e721b143f9b58250b2bf7ea9842a2114d80",
    "suss": "cc87fd28a008a094adc2c8674c7fcd5469e62a991cce932be75068b220ff410c",
    "thor": "992756e379cd18ed0a9cd0a667ccd7eedd2db4a80a1dce0e7f1974bd3a532a05",
    "twis": "d1e1f8cad9438996460fad536953890aa5beee9268bb917a7bb1505091027679",
    "veil": "c5e4139b64a988d0d55a6bf01a09cb9905adf586c0d3940659f372032176242d",
    "wist": "a993495e3d58eded68f70b4855ba0f4beab19caca87a0e366a0b97e49c3a6e63",
    "yell": "b01e45a07e070ee310620a447329e8964befa511d39a55636d8e2e250a7847aa",
}


def registry() -> dict[str, tuple[RemoteFile, ...]]:
    """Every dataset the pipeline downloads, by folder name."""
    return {
        "fashion-mnist": tuple(
            RemoteFile(
                "fashion-mnist",
                name,
                sha,
                tuple(u.format(name=name) for u in _FASHION_URLS),
                _FASHION_DEBIAN,
            )
            for name, sha in _FASHION.items()
        ),
        "shakespeare": (
            RemoteFile("shakespeare", "input.txt", _SHAKESPEARE_SHA256, (_SHAKESPEARE_URL,)),
        ),
        "sherlock": tuple(
            RemoteFile("sherlock", f"{code}.txt", sha, (_SHERLOCK_URL.format(name=f"{code}.txt"),))
            for code, sha in _SHERLOCK.items()
        ),
    }
